# The two commands of the README. Both install what they need first.
.PHONY: demo test test-reliability
demo:
	@scripts/setup.sh
	.venv/bin/backroom demo

test:
	scripts/test.sh

# Crash (kill -9) and rebalance tests: known intermittent durability bug, see README.
test-reliability:
	@scripts/setup.sh --test
	.venv/bin/python -m pytest -q -rfE -m reliability tests/integration/test_reliability.py
