// Package setuppw keeps the operator's setup-mode passwords: additional
// digest passwords amtd tries as "admin" on a device in setup mode
// (legacy.md §7.2 item 4), e.g. the MEBx password a setup.bin set. They are
// sealed in the secret store in one entry.
package setuppw

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/amtd-project/amtd/internal/secrets"
)

// Key is the secret-store entry holding the passwords.
const Key = "system/legacy/setup-passwords"

// Max is the number of passwords kept (the device is tried with at most
// three refused credentials per hello anyway).
const Max = 16

// Load returns the passwords in the order they were added.
func Load(ctx context.Context, sec secrets.Store) ([]string, error) {
	m, err := sec.Get(ctx, Key)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the setup passwords: %w", err)
	}
	type kv struct {
		i int
		v string
	}
	var l []kv
	for k, v := range m {
		if i, err := strconv.Atoi(k); err == nil {
			l = append(l, kv{i, v})
		}
	}
	sort.Slice(l, func(a, b int) bool { return l[a].i < l[b].i })
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.v
	}
	return out, nil
}

// Add appends pw unless it is already kept; it returns the number kept.
func Add(ctx context.Context, sec secrets.Store, pw string) (int, error) {
	l, err := Load(ctx, sec)
	if err != nil {
		return 0, err
	}
	for _, p := range l {
		if p == pw {
			return len(l), nil
		}
	}
	if len(l) >= Max {
		return len(l), fmt.Errorf("at most %d setup passwords are kept; clear them first", Max)
	}
	l = append(l, pw)
	m := make(map[string]string, len(l))
	for i, p := range l {
		m[strconv.Itoa(i+1)] = p
	}
	if err := sec.Put(ctx, Key, m); err != nil {
		return 0, fmt.Errorf("storing the setup passwords: %w", err)
	}
	return len(l), nil
}

// Clear removes every kept password.
func Clear(ctx context.Context, sec secrets.Store) error { return sec.Delete(ctx, Key) }

// Loader is server.Config.SetupPasswords over sec.
func Loader(sec secrets.Store) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) { return Load(ctx, sec) }
}
