# Convenience wrapper: the real entry point is scripts/dev.sh.
.PHONY: run test build clean
run:
	sh scripts/dev.sh run
test:
	sh scripts/dev.sh test
build:
	sh scripts/dev.sh build
clean:
	rm -rf build build-werror build-asan
