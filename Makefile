# amtd — see README.md. `make run` starts the server on its embedded default;
# `make test` runs the whole test suite (installing its tools first).
GO ?= go
DATA ?= ./amtd-data
PKGS ?= ./...

.PHONY: run build test vet fmt-check unit compat tools bench clean

run:
	$(GO) run ./cmd/amtd serve --data $(DATA)

build:
	$(GO) build -o bin/amtd ./cmd/amtd

tools:
	scripts/tools.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -timeout 60m $(PKGS)

compat:
	scripts/compat.sh

test: tools fmt-check vet unit compat

bench:
	@echo "see docs/BENCHMARKS.md for the benchmark commands"

clean:
	rm -rf bin
