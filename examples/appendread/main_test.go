package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	out, err := run(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"offsets [0, 0)\n",
		"appended offsets [0, 3), durable below 3\n",
		`en="hello, world"  source:appendread` + "\n",
		`fr="bonjour, le monde"  source:appendread` + "\n",
		`de="hallo, Welt"  source:appendread` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	line := regexp.MustCompile(`(?m)^ +(\d+)  \d{4}-\d\d-\d\dT[0-9:.]+Z  `)
	if got := line.FindAllStringSubmatch(out, -1); len(got) != 3 || got[0][1] != "0" || got[2][1] != "2" {
		t.Errorf("want records at offsets 0, 1, 2; got %v in:\n%s", got, out)
	}

	// A second run reopens the same log and continues after it.
	out, err = run(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"offsets [0, 3)\n", "appended offsets [3, 6), durable below 6\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("second run: output lacks %q:\n%s", want, out)
		}
	}
	if got := line.FindAllStringSubmatch(out, -1); len(got) != 3 || got[0][1] != "3" {
		t.Errorf("second run: want records at offsets 3, 4, 5; got %v in:\n%s", got, out)
	}
}
