/**
 * What a probe expects of its answer. Every probe has an expectation: an HTTP probe expects a 2xx
 * status unless it says otherwise, an exec probe exit status 0. A probe whose answer does not
 * meet it has not succeeded, whatever the answer was.
 */

export interface HttpExpectation {
  /** The status the answer must have; default: any 2xx. */
  status?: number;
  /** Text the body must contain. */
  bodyContains?: string;
}

export interface ExecExpectation {
  /** The exit status the command must have; default 0. */
  exitCode?: number;
  /** Text its output (stdout or stderr) must contain. */
  outputContains?: string;
}

/** What one try of an HTTP probe saw: an answer, or why there was none. */
export type HttpAnswer = { status: number; body: string } | { error: string };

/** What one try of an exec probe saw: how the command ended and what it wrote, or why it did not end. */
export type ExecAnswer = { exitCode: number; output: string } | { error: string };

const quoted = (text: string) => JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);

export function describeHttpExpectation(e: HttpExpectation = {}): string {
  return [e.status === undefined ? 'status 2xx' : `status ${e.status}`, ...(e.bodyContains === undefined ? [] : [`body contains ${quoted(e.bodyContains)}`])].join(', ');
}

export function describeExecExpectation(e: ExecExpectation = {}): string {
  return [`exit ${e.exitCode ?? 0}`, ...(e.outputContains === undefined ? [] : [`output contains ${quoted(e.outputContains)}`])].join(', ');
}

/** Why an HTTP answer does not meet the expectation, or undefined when it does. */
export function unmetHttp(e: HttpExpectation = {}, answer: HttpAnswer): string | undefined {
  if ('error' in answer) return answer.error;
  const statusOk = e.status === undefined ? answer.status >= 200 && answer.status < 300 : answer.status === e.status;
  if (!statusOk) return `HTTP ${answer.status}, expected ${e.status ?? '2xx'}`;
  if (e.bodyContains !== undefined && !answer.body.includes(e.bodyContains)) return `body does not contain ${quoted(e.bodyContains)}`;
  return undefined;
}

/** Why an exec answer does not meet the expectation, or undefined when it does. */
export function unmetExec(e: ExecExpectation = {}, answer: ExecAnswer): string | undefined {
  if ('error' in answer) return answer.error;
  const want = e.exitCode ?? 0;
  if (answer.exitCode !== want) return `exit ${answer.exitCode}, expected ${want}`;
  if (e.outputContains !== undefined && !answer.output.includes(e.outputContains)) return `output does not contain ${quoted(e.outputContains)}`;
  return undefined;
}
