//go:build race

package provision_test

const raceDetector = true
