package main

import (
	"context"
	"errors"
)

// cmdDemo is not built yet.
func cmdDemo(ctx context.Context, args []string, e env) error {
	return errors.New("batch demo: not implemented yet")
}
