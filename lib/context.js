'use strict';
// What method and event handlers receive.

const { Response } = require('./response.js');

/** The context of one client request. */
class RequestContext {
  constructor(helios, connection, method, payload, requestId) {
    this.helios = helios;
    this.connection = connection;
    this.method = method;
    this.payload = payload;
    this.requestId = requestId;
  }

  /** The id of the calling connection. */
  get clientId() {
    return this.connection.id;
  }

  /** An error response to return from a handler or middleware. */
  createErrorResponse(message, status = 500, code) {
    return Response.error(message, status, code);
  }

  /** A success response with an explicit status. */
  createResponse(data, status = 200) {
    return Response.success(data, status);
  }
}

/** The context of one client event. */
class EventContext {
  constructor(helios, connection, topic) {
    this.helios = helios;
    this.connection = connection;
    this.topic = topic;
  }

  /** The id of the sending connection. */
  get clientId() {
    return this.connection.id;
  }
}

module.exports = { RequestContext, EventContext };
