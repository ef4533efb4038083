package app

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryVariable: every environment variable the service reads is named
// in the README (as `NAME` or `NAME=...`), so whoever has only the repository can
// configure it.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := envVars(reflect.TypeOf(Config{}))
	if len(vars) < 20 {
		t.Fatalf("only %d env tags found in Config: %v", len(vars), vars)
	}
	for _, v := range vars {
		if !strings.Contains(string(readme), "`"+v+"`") && !strings.Contains(string(readme), "`"+v+"=") {
			t.Errorf("%s is read by Config but not named in README.md", v)
		}
	}
}

// envVars returns the names in the `env` tags of t's fields, nested structs included.
func envVars(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			out = append(out, name)
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			out = append(out, envVars(f.Type)...)
		}
	}
	return out
}
