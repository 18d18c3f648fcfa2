'use strict';
// @aionbuilders/helios — the public face. The native loader lives in native.js (generated at build).

const { Helios } = require('./lib/helios.js');
const { Connection } = require('./lib/connection.js');
const { RequestContext, EventContext } = require('./lib/context.js');
const { Namespace } = require('./lib/namespace.js');
const { Emitter } = require('./lib/emitter.js');
const { Response } = require('./lib/response.js');

exports.Helios = Helios;
exports.Connection = Connection;
exports.Namespace = Namespace;
exports.RequestContext = RequestContext;
exports.EventContext = EventContext;
exports.Response = Response;
exports.Emitter = Emitter;
