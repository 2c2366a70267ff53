package mei

import "path/filepath"

// FleetSocketPath is the conventional socket of one fleet device:
// DIR/<uuid>/mei.sock (spec/heci.md §8.4). Unix socket paths are limited to
// 107 bytes, so DIR should stay under about 60 bytes.
func FleetSocketPath(dir, uuid string) string {
	return filepath.Join(dir, uuid, "mei.sock")
}
