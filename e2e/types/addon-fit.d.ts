// The vendored build the agent serves at /assets/vendor/addon-fit.mjs. Its
// package declares it inside `declare module` in a file that is itself a
// module, which TypeScript reads as an augmentation, so the class is restated.
import type { ITerminalAddon, Terminal } from "@xterm/xterm";

export class FitAddon implements ITerminalAddon {
  activate(terminal: Terminal): void;
  dispose(): void;
  fit(): void;
  proposeDimensions(): { cols: number; rows: number } | undefined;
}
