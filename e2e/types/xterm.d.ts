// The vendored build the agent serves at /assets/vendor/xterm.mjs, typed by its package.
export * from "@xterm/xterm";
