package bird

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/meshrr/meshrr/agent/internal/backend"
)

// codeVersion is the reply line of `show status` that names the daemon
// ("BIRD 2.17.6").
const codeVersion = 1000

// Version is a BIRD release.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// minSupported is the oldest minor release of each supported BIRD major
// version: the configuration meshrr renders (`authentication md5` beside
// a password, which 2.0 rejects) and the replies its readers parse are
// those of BIRD 2.17, the release of Debian 13 the image is built from,
// and of BIRD 3.1, Debian 13's BIRD 3 (docs/operations.md). Every golden
// configuration parses with both, and the real-BIRD tests run with both
// (make unit, make unit-bird3).
var minSupported = map[int]int{2: 17, 3: 1}

// SupportedText is minSupported in words.
const SupportedText = "BIRD 2.17 or a later 2.x, or BIRD 3.1 or a later 3.x"

// versionRE reads the release both where `show status` names it
// ("BIRD 2.17.6") and where `bird --version` does ("BIRD version 3.1.8").
var versionRE = regexp.MustCompile(`^BIRD (?:version )?v?(\d+)\.(\d+)(?:\.(\d+))?`)

// ReadVersion reads a release from the daemon's own words: the version
// line of `show status`, or the output of `bird --version`.
func ReadVersion(text string) (Version, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return Version{}, fmt.Errorf("bird: cannot read a version in %q", text)
	}
	v := Version{}
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.Patch, _ = strconv.Atoi(m[3])
	}
	return v, nil
}

// ParseVersion reads the daemon's version from a `show status` reply.
func ParseVersion(lines []Line) (Version, error) {
	for _, l := range lines {
		if l.Code == codeVersion {
			v, err := ReadVersion(l.Text)
			if err != nil {
				return Version{}, fmt.Errorf("show status: %w", err)
			}
			return v, nil
		}
	}
	return Version{}, fmt.Errorf("bird: show status names no version: %s", replyText(lines))
}

// Supported says whether meshrr supports v (an *backend.UnsupportedError
// when it does not).
func (v Version) Supported() error {
	if minor, ok := minSupported[v.Major]; ok && v.Minor >= minor {
		return nil
	}
	return &backend.UnsupportedError{Daemon: "BIRD " + v.String(), Supported: SupportedText}
}

// Version asks the daemon which release it is.
func (b *Backend) Version(ctx context.Context) (Version, error) {
	lines, err := b.client.Cmd(ctx, "show status")
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(lines)
}

// CheckDaemon implements backend.Checked: the daemon must be a supported
// release, and of the release line the configuration names
// (backend.bird.version), if it names one.
func (b *Backend) CheckDaemon(ctx context.Context) error {
	v, err := b.Version(ctx)
	if err != nil {
		return err
	}
	return v.Of(b.line)
}

// Of says whether v is supported and of release line major (0: any).
func (v Version) Of(major int) error {
	if err := v.Supported(); err != nil {
		return err
	}
	if major != 0 && v.Major != major {
		return &backend.UnsupportedError{Daemon: "BIRD " + v.String(),
			Supported: fmt.Sprintf("BIRD %d here: backend.bird.version is %d", major, major),
			Do:        fmt.Sprintf("run a BIRD %d image (images.bird for 2, images.bird3 for 3), or set backend.bird.version to %d", major, v.Major)}
	}
	return nil
}
