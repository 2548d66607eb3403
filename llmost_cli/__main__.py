from __future__ import annotations

from llmost_cli.main import main

if __name__ == "__main__":
    main()
