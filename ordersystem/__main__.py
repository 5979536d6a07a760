from ordersystem.cli import main

raise SystemExit(main())
