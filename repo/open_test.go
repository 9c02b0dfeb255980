package repo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/esimbatch/esimbatch/repo"
)

// A malformed PostgreSQL URL is refused without its password in the error.
func TestOpenBadURLHidesPassword(t *testing.T) {
	tests := []struct{ name, url string }{
		{"bad escape", "postgres://u:s3cr%zz@127.0.0.1:1/x"},
		{"space", "postgres://u:s3cr et@127.0.0.1:1/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := repo.Open(context.Background(), tt.url)
			if err == nil {
				t.Fatal("Open accepted a malformed URL")
			}
			if strings.Contains(err.Error(), "s3cr") {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
}
