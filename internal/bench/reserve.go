package bench

import (
	"context"
	"fmt"

	"commerce/scripts/lua"
)

// scriptSource returns lua.Source(name), or an error when the script is not embedded
// (lua.Source panics then).
func scriptSource(name string) (src string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("scripts/lua/%s.lua is not committed yet", name)
		}
	}()
	return lua.Source(name), nil
}

// reserveCall builds one call of the inventory's reserve script on a counter made for the
// run with a stock so large that every call succeeds, and a cleanup that deletes it.
func reserveCall(ctx context.Context, e *Env) (ScriptCall, func(), error) {
	src, err := scriptSource("reserve")
	if err != nil {
		return ScriptCall{}, func() {}, err
	}
	_ = src
	return ScriptCall{}, func() {}, fmt.Errorf("the reserve script's keys and arguments are not known yet")
}
