package main

import (
	"fmt"
	"os"
	"time"
)

// steps prints one line per step with its result and remembers failures.
type steps struct {
	failed int
}

func newSteps() *steps { return &steps{} }

// do runs f and prints "✓ name: result" or "✗ name: error".
func (s *steps) do(name string, f func() (string, error)) error {
	start := time.Now()
	result, err := f()
	if err != nil {
		s.failed++
		fmt.Fprintf(os.Stdout, "✗ %-42s %v\n", name, err)
		return err
	}
	fmt.Fprintf(os.Stdout, "✓ %-42s %s (%.1fs)\n", name, result, time.Since(start).Seconds())
	return nil
}
