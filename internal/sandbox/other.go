//go:build !linux

package sandbox

import "context"

func supported() error { return ErrUnsupported }

func landlockABI() int { return 0 }

// runWorker refuses: a worker's limits exist on Linux only.
func runWorker([]string) int { return exitSetup }

func (p *Pool) execute(context.Context, string, []byte) ([]byte, error) {
	return nil, ErrUnsupported
}
