package setuppw_test

import (
	"slices"
	"testing"

	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/setuppw"
)

func TestAddLoadClear(t *testing.T) {
	ctx := t.Context()
	_, sec := legacytest.Open(t)
	if l, err := setuppw.Load(ctx, sec); err != nil || len(l) != 0 {
		t.Fatalf("empty = %v, %v", l, err)
	}
	for _, pw := range []string{"b-Pass1!", "a-Pass1!", "b-Pass1!", ""} {
		if _, err := setuppw.Add(ctx, sec, pw); err != nil {
			t.Fatal(err)
		}
	}
	l, err := setuppw.Loader(sec)(ctx)
	if err != nil || !slices.Equal(l, []string{"b-Pass1!", "a-Pass1!", ""}) {
		t.Fatalf("loaded %q, %v", l, err)
	}
	for i := range setuppw.Max {
		if _, err := setuppw.Add(ctx, sec, string(rune('A'+i))+"-x1!"); err != nil && i < setuppw.Max-3 {
			t.Fatal(err)
		}
	}
	if n, err := setuppw.Add(ctx, sec, "one-more-1!"); err == nil || n != setuppw.Max {
		t.Fatalf("over the limit: %d, %v", n, err)
	}
	if err := setuppw.Clear(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if l, _ := setuppw.Load(ctx, sec); len(l) != 0 {
		t.Fatalf("after clear %q", l)
	}
}
