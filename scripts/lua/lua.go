// Package lua embeds the Redis Lua scripts of scripts/lua. Each file starts with a header
// naming its KEYS, ARGV and return codes; Go code wraps them with redis.NewScript.
package lua

import (
	"embed"
	"fmt"
)

//go:embed *.lua
var files embed.FS

// Source returns the text of scripts/lua/<name>.lua. It panics when the file is missing,
// which can only happen through a programming error caught by the first test run.
func Source(name string) string {
	b, err := files.ReadFile(name + ".lua")
	if err != nil {
		panic(fmt.Sprintf("lua: script %q not embedded: %v", name, err))
	}
	return string(b)
}
