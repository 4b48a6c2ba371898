package kafka

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/streamkit/commitlog"
)

// TestKcat drives kcat (librdkafka, as Debian ships it) against the
// server: produce with and without compression, consume from the start,
// and consume in a group. CI installs kcat; without it the test is skipped
// and says so.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (CI installs it: apt-get install kcat)")
	}
	e := newEnv(t, envOptions{broker: commitlog.Options{AutoCreateTopics: true}})
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", e.addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("one\ntwo\nthree\n", "-t", "plain", "-P")
	run("a\nb\n", "-t", "zipped", "-z", "zstd", "-P")
	run("c\n", "-t", "zipped", "-z", "gzip", "-P")
	run("k1:v1\nk2:v2\n", "-t", "keyed", "-K", ":", "-P")

	if got := run("", "-t", "plain", "-C", "-e", "-f", "%o:%s\n"); got != "0:one\n1:two\n2:three\n" {
		t.Fatalf("plain: %q", got)
	}
	if got := run("", "-t", "zipped", "-C", "-e", "-f", "%o:%s\n"); got != "0:a\n1:b\n2:c\n" {
		t.Fatalf("zipped: %q", got)
	}
	if got := run("", "-t", "keyed", "-C", "-e", "-f", "%k=%s\n"); got != "k1=v1\nk2=v2\n" {
		t.Fatalf("keyed: %q", got)
	}
	if got := run("", "-G", "kcat-group", "plain", "-e", "-f", "%s\n", "-X", "auto.offset.reset=earliest"); got != "one\ntwo\nthree\n" {
		t.Fatalf("group: %q", got)
	}
}
