// A baseline of `npm run bench`: the floor any Node HTTP service stands on. A bare node:http
// server that reads each request's body and answers 202 with no body, nothing else.
import http from 'node:http';

const server = http.createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    response.statusCode = 202;
    response.end();
  });
});
server.listen(Number(process.env.PORT), process.env.DROP_HOST ?? '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
