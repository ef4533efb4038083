// Package lua embeds the Redis Lua scripts of scripts/lua. Each script file starts with a
// header naming its KEYS, ARGV and replies; files named *_lib.lua are libraries, not
// scripts: Source prepends them to the scripts that use them. base_lib.lua states the
// conventions every script follows (error replies for bad input, status strings for
// outcomes, time from Redis).
package lua

import (
	"embed"
	"fmt"
	"strings"
)

//go:embed *.lua
var files embed.FS

// base is the library every script gets.
const base = "base_lib"

// Source returns the runnable text of scripts/lua/<name>.lua: a line declaring
// SCRIPT = name (error replies name the script), base_lib.lua, each library of libs in
// order (for example "inv_lib"), then the script. It panics when a file is missing or a
// library is asked for as a script, which only a programming error can cause and the
// first test run catches.
func Source(name string, libs ...string) string {
	if strings.HasSuffix(name, "_lib") {
		panic(fmt.Sprintf("lua: %q is a library, not a script", name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "local SCRIPT = '%s'\n", name)
	for _, part := range append(append([]string{base}, libs...), name) {
		b.WriteString(read(part))
		b.WriteString("\n")
	}
	return b.String()
}

// Names returns the names of every script (libraries excluded), sorted.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("lua: list scripts: %v", err))
	}
	var out []string
	for _, e := range entries {
		n := strings.TrimSuffix(e.Name(), ".lua")
		if !strings.HasSuffix(n, "_lib") {
			out = append(out, n)
		}
	}
	return out
}

func read(name string) string {
	b, err := files.ReadFile(name + ".lua")
	if err != nil {
		panic(fmt.Sprintf("lua: script %q not embedded: %v", name, err))
	}
	return string(b)
}
