package bird

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/meshrr/meshrr/agent/internal/fileutil"
)

// extraConfig keeps the agent's own copy of the operator's extraConfig
// (live), the file BIRD includes, and replaces it only with a version of
// the mounted one (source) that BIRD accepted. The source changes under
// the agent whenever its ConfigMap does (kubelet), helm or not: BIRD
// including it directly would take a broken edit into the next apply of
// every pod, and into a BIRD that restarts.
type extraConfig struct {
	source, live string
	// OnChange, when set, hears what became of a new source version: nil
	// (in use) or why BIRD refused it (the last good one stays in use).
	OnChange func(refused error)

	mu sync.Mutex
	// refused is the source version BIRD last refused: not tried again
	// until it changes
	refused []byte
}

// bootstrap makes sure BIRD can start: the include names an existing
// file (empty until the agent has a version BIRD accepted).
func (x *extraConfig) bootstrap() error {
	if x.source == "" {
		return nil
	}
	cur, err := fileutil.ReadIfExists(x.live)
	if err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	if cur == nil {
		return fileutil.WriteAtomic(x.live, nil)
	}
	return nil
}

// readSource reads the mounted extraConfig (missing: empty).
func (x *extraConfig) readSource() ([]byte, error) {
	b, err := fileutil.ReadIfExists(x.source)
	if err != nil {
		return nil, fmt.Errorf("bird: extraConfig %s: %w", x.source, err)
	}
	return b, nil
}

// mark appends the digest of the source version to a rendered
// configuration.
func (x *extraConfig) mark(cfg []byte) ([]byte, error) {
	if x.source == "" {
		return cfg, nil
	}
	src, err := x.readSource()
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(cfg, "# extraConfig read: sha256 %x\n", sha256.Sum256(src)), nil
}

// apply activates cfg. When the source differs from the live copy (and is
// not the version last refused), it first tries cfg with the source in
// place of the live copy; if BIRD accepts that, the source becomes the
// live copy. If BIRD refuses it while cfg with the live copy is accepted,
// the source was at fault: it is reported and cfg runs with the last good
// copy.
func (x *extraConfig) apply(ctx context.Context, cfg []byte, activate func(context.Context, []byte) error) error {
	if err := x.bootstrap(); err != nil { // the include must name a file
		return err
	}
	src, err := x.readSource()
	if err != nil {
		return err
	}
	live, err := fileutil.ReadIfExists(x.live)
	if err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	x.mu.Lock()
	tried := x.refused != nil && bytes.Equal(src, x.refused)
	x.mu.Unlock()
	if bytes.Equal(src, live) || tried {
		return activate(ctx, cfg)
	}
	next := x.live + ".next"
	if err := fileutil.WriteAtomic(next, src); err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	candidate := bytes.Replace(cfg, includeLine(x.live), includeLine(next), 1)
	tryErr := activate(ctx, candidate)
	var rejected *CmdError
	switch {
	case tryErr == nil:
		if err := fileutil.WriteAtomic(x.live, src); err != nil {
			return fmt.Errorf("bird: %w", err)
		}
		// BIRD runs the source from next; the file it loads on start
		// includes the live copy, which now holds the same text
		x.settle(nil, nil)
		return activate(ctx, cfg)
	case !errors.As(tryErr, &rejected):
		return tryErr // BIRD did not answer: try again later
	}
	if err := activate(ctx, cfg); err != nil {
		return err // the rest is refused too: nothing to blame on extraConfig
	}
	x.settle(src, tryErr)
	return nil
}

// settle records the outcome for a new source version and reports it.
func (x *extraConfig) settle(refusedSrc []byte, why error) {
	x.mu.Lock()
	x.refused = refusedSrc
	x.mu.Unlock()
	if x.OnChange != nil {
		x.OnChange(why)
	}
}

// includeLine is the include statement the templates write for a file.
func includeLine(path string) []byte {
	return fmt.Appendf(nil, "include %q;", path)
}
