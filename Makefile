# The two commands of the README. Both install what they need first.
.PHONY: demo test
demo:
	@scripts/setup.sh
	.venv/bin/backroom demo

test:
	scripts/test.sh
