from enigm_recover.cli import main

raise SystemExit(main())
