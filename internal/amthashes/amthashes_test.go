package amthashes

import "testing"

func TestTable(t *testing.T) {
	d := Defaults()
	if len(d) != 24 {
		t.Fatalf("defaults: %d entries, want 24", len(d))
	}
	active := 0
	for i, e := range d {
		if e.Index != i+1 || len(e.SHA256) != 64 || (e.SHA1 != "" && len(e.SHA1) != 40) {
			t.Errorf("entry %d malformed: %+v", i, e)
		}
		if e.Active {
			active++
		}
	}
	if active != 23 {
		t.Errorf("%d active defaults, want 23 (entry 20 inactive)", active)
	}
	e, ok := Lookup("C3846BF24B9E93CA64274C0EC67C1ECC5E024FFCACD2D74019350E81FE546AE4")
	if !ok || e.Index != 1 {
		t.Errorf("Lookup Go Daddy Class 2 by SHA-256: %+v %v", e, ok)
	}
	if e, ok := Lookup("742c3192e607e424eb4549542be1bbc53e6174e2"); !ok || e.Index != 0 {
		t.Errorf("Lookup VeriSign G1 by SHA-1: %+v %v", e, ok)
	}
	if _, ok := Lookup("00"); ok {
		t.Error("Lookup of a short hash succeeded")
	}
	d[0].Name = "changed"
	if Defaults()[0].Name == "changed" {
		t.Error("Defaults returned the shared table")
	}
}
