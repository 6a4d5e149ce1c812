# The two commands of the README. Both install what they need first.
.PHONY: demo test test-reliability
demo:
	@scripts/setup.sh
	.venv/bin/backroom demo

test:
	scripts/test.sh

# Crash (kill -9) and rebalance tests alone (they are in `make test` too), e.g. to repeat them.
test-reliability:
	@scripts/setup.sh --test
	.venv/bin/python -m pytest -q -rfE -m reliability tests/integration/test_reliability.py
