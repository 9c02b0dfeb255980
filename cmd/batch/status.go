package main

import (
	"context"
	"errors"
)

// cmdStatus waits for the store's Status query (repo.Store.Status in
// LIFECYCLE.md), which branch repo has not landed yet.
func cmdStatus(ctx context.Context, args []string, e env) error {
	return errors.New("batch status: not available yet (needs repo.Store.Status)")
}
