# The repository stands alone: a user's clone has nothing beside it, so nothing the project builds
# or tests may read a file outside it (the golden vectors live in tests/vectors/).
#
#   make standalone-check   nothing read from outside the repository; unit tests in a bare clone [make test]
#
# It fails if a tracked file other than Markdown names the team's reference folder beside the
# repository, then runs the unit tests and the Python golden-vector checks in a clone of HEAD
# made in an empty temporary directory (nothing beside it).
#
# It tests what is committed: uncommitted changes are not in the clone (it says so).

.PHONY: standalone-check

standalone-check: venv
	@refs=$$(git grep -nI -e '\.\./shared' -- . ':!*.md' || true); \
	if [ -n "$$refs" ]; then \
		echo "standalone-check: tracked files read outside the repository (copy what they need into it):" >&2; \
		echo "$$refs" >&2; exit 1; fi
	@if [ -n "$$(git status --porcelain --untracked-files=no)" ]; then \
		echo "standalone-check: note: uncommitted changes are not in the clone it tests"; fi
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	git clone -q . "$$tmp/repo"; \
	echo "standalone-check: unit tests in $$tmp/repo (a clone with nothing beside it)"; \
	cd "$$tmp/repo" && \
	CARGO_TARGET_DIR="$(abspath target)" cargo test --workspace --quiet && \
	"$(abspath $(VENV))/bin/python" -m pytest -q -p no:cacheprovider tests/integration/test_x402pay.py && \
	echo "standalone-check: OK"

EXTRA_TESTS += standalone-check
