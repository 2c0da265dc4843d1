// A baseline of `npm run bench`: a CloudEvents sink as the CloudEvents SDK's own docs write
// one: node:http, the body read as text, HTTP.toEvent() and validate(), answered 202 (a 400
// when the event is not valid). No framework, no logging, no decision.
import http from 'node:http';
import { HTTP } from 'cloudevents';

const server = http.createServer((request, response) => {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (chunk) => (body += chunk));
  request.on('end', () => {
    try {
      const event = HTTP.toEvent({ headers: request.headers, body });
      (Array.isArray(event) ? event : [event]).forEach((e) => e.validate());
      response.statusCode = 202;
    } catch {
      response.statusCode = 400;
    }
    response.end();
  });
});
server.listen(Number(process.env.PORT), process.env.DROP_HOST ?? '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
