# Hot-path instruction count under callgrind: a regression check without timing noise.
.PHONY: hot-path-check
hot-path-check:
	bench/callgrind.sh --check

EXTRA_TESTS += hot-path-check
