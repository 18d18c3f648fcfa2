'use strict';
// The result of a request: data on success, an error object on failure, and an HTTP-like status.

const STATUS_CODES = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'TIMEOUT',
  409: 'CONFLICT',
  422: 'UNPROCESSABLE',
  429: 'RATE_LIMITED',
  500: 'INTERNAL_ERROR',
  501: 'NOT_IMPLEMENTED',
  503: 'SERVICE_UNAVAILABLE',
  504: 'TIMEOUT',
};

class Response {
  /**
   * @param {number} status
   * @param {*} data the result when status < 400
   * @param {{code: string, message: string} | null} error the error when status >= 400
   */
  constructor(status, data = null, error = null) {
    this.status = status;
    this.data = status < 400 ? data : null;
    this.error = status >= 400 ? normalizeError(error, status) : null;
  }

  /** A successful response. */
  static success(data, status = 200) {
    return new Response(status, data, null);
  }

  /** An error response; `code` defaults to a name derived from the status. */
  static error(message, status = 500, code) {
    // Below 400 a response carries data, so the error would be dropped without a word.
    if (typeof status === 'number' && status < 400) {
      throw new RangeError(`an error response needs a status from 400 to 999, got ${status}`);
    }
    return new Response(status, null, { code: code ?? codeFor(status), message: String(message) });
  }

  isSuccess() {
    return this.status < 400;
  }

  isError() {
    return this.status >= 400;
  }
}

/** A status the protocol allows: an integer from 100 to 999, written into the response frame as it is. */
function isStatus(value) {
  return Number.isInteger(value) && value >= 100 && value <= 999;
}

function codeFor(status) {
  return STATUS_CODES[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'ERROR');
}

function normalizeError(error, status) {
  if (error && typeof error === 'object') {
    return { ...error, code: error.code ?? codeFor(status), message: String(error.message ?? '') };
  }
  return { code: codeFor(status), message: error == null ? '' : String(error) };
}

module.exports = { Response, isStatus };
