from mailbeacon.cli.main import main

raise SystemExit(main())
