# The two commands a newcomer needs (see README.md); both set everything up first.
.PHONY: run test setup bench clean

VENV ?= .venv

run:
	./scripts/run.sh

test:
	./scripts/test.sh

setup:
	./scripts/setup.sh

bench: setup
	$(VENV)/bin/python bench/hashing.py

clean:
	rm -rf build $(VENV) src/trusted_ledger/hashing/_native*.so src/*.egg-info
