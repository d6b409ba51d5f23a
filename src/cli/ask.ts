import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

/** The person did not answer: Ctrl-C at the prompt, end of input (Ctrl-D), or the program was told to stop. */
export class PromptInterrupted extends Error {
  constructor(
    message: string,
    /** False when the program was stopped (SIGTERM, a hangup, a closed output): nobody said no. */
    readonly byPerson = true,
  ) {
    super(message);
  }
}

export interface AskOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** SIGTERM (or a first Ctrl-C outside the prompt) while waiting: no answer. */
  signal?: AbortSignal | undefined;
}

/**
 * Asks one question at a terminal and returns the line typed. Ctrl-C at the prompt, Ctrl-D and a stop
 * signal throw PromptInterrupted: the caller treats that as "no" (the engine records a decline), never as
 * a reason to carry on.
 */
export function askLine(question: string, o: AskOptions): Promise<string> {
  const rl = createInterface({ input: o.input, output: o.output, terminal: true });
  return new Promise<string>((resolve, reject) => {
    let done = false;
    const onAbort = () => finish(() => reject(new PromptInterrupted('stopped while waiting for an answer', false)));
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      o.signal?.removeEventListener('abort', onAbort);
      rl.close();
      settle();
    };
    // A listener here keeps Ctrl-C at the prompt from reaching the process as SIGINT: it means "no".
    rl.on('SIGINT', () => {
      o.output.write('^C\n');
      finish(() => reject(new PromptInterrupted('Ctrl-C at the prompt')));
    });
    rl.on('close', () => finish(() => reject(new PromptInterrupted('no answer (end of input)'))));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    rl.question(question, (answer) => finish(() => resolve(answer)));
  });
}

/**
 * Asks for a secret (a password) at a terminal: what is typed is not shown. Ctrl-C, Ctrl-D and a stop
 * signal throw PromptInterrupted, as askLine.
 */
export function askSecret(question: string, o: AskOptions): Promise<string> {
  o.output.write(question);
  const muted = new Writable({ write: (_chunk, _enc, cb) => cb() });
  const rl = createInterface({ input: o.input, output: muted, terminal: true });
  return new Promise<string>((resolve, reject) => {
    let done = false;
    const onAbort = () => finish(() => reject(new PromptInterrupted('stopped while waiting for an answer', false)));
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      o.signal?.removeEventListener('abort', onAbort);
      rl.close();
      o.output.write('\n');
      settle();
    };
    rl.on('SIGINT', () => finish(() => reject(new PromptInterrupted('Ctrl-C at the prompt'))));
    rl.on('close', () => finish(() => reject(new PromptInterrupted('no answer (end of input)'))));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    rl.question('', (answer) => finish(() => resolve(answer)));
  });
}
