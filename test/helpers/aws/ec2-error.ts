/**
 * An EC2 API error as the Query protocol returns it: an error code from the EC2 API reference's
 * error list, its message, and the HTTP status (400 for client errors; 401 AuthFailure; 403
 * UnauthorizedOperation; 500 InternalError; 503 Unavailable and RequestLimitExceeded).
 */
export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export const notFound = (code: string, message: string) => new Ec2Error(code, message);

/** "Value (x) for parameter y is invalid. ..." as EC2 words it. */
export function invalidValue(parameter: string, value: unknown, why = ''): Ec2Error {
  return new Ec2Error('InvalidParameterValue', `Value (${String(value)}) for parameter ${parameter} is invalid.${why ? ` ${why}` : ''}`);
}

export function missingParameter(name: string): Ec2Error {
  return new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`);
}

/** Ids are a prefix and 8 or 17 lowercase hex digits; anything else is "Malformed". */
export function checkId(id: string, prefix: string, malformedCode: string): void {
  if (!new RegExp(`^${prefix}-([0-9a-f]{8}|[0-9a-f]{17})$`).test(id)) throw new Ec2Error(malformedCode, `Invalid id: "${id}" (expecting "${prefix}-...")`);
}
