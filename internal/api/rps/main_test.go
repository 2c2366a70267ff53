package rps_test

import (
	"testing"

	"github.com/amtd-project/amtd/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
