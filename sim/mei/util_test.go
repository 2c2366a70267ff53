package mei

import (
	"os"
	"runtime"
)

func runtimeGosched() { runtime.Gosched() }

func writeFile(path string) error { return os.WriteFile(path, []byte("keep me"), 0o600) }
