package main

import (
	"context"
	"errors"
)

// cmdStatus is not built yet.
func cmdStatus(ctx context.Context, args []string, e env) error {
	return errors.New("batch status: not implemented yet")
}
