package agent

import (
	"encoding/hex"
	"strconv"
)

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

func strconvHex(n int) string { return strconv.FormatInt(int64(n), 16) }

func strconvDec(n int) string { return strconv.Itoa(n) }
