"""``python -m calolab``: the ``calolab`` command (so that ``torchrun ... -m calolab train`` works)."""

from calolab.cli import main

if __name__ == "__main__":
    main()
