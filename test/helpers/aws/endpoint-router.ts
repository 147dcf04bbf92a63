import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { listen, type Listener } from './http-listener.js';

/**
 * One endpoint for every service of the fake AWS, as LocalStack offers one (what `--endpoint-url`
 * and AWS_ENDPOINT_URL point at): each request goes, untouched, to the server of the service its
 * SigV4 credential scope names (…/region/ec2/aws4_request → EC2, ebs → EBS, s3 → S3). A request
 * with no scope gets S3's answer (S3 accepts anonymous requests; EC2 and EBS would refuse it the
 * same way). A connection the service drops is dropped here too.
 */
export async function startEndpointRouter(services: Record<string, string>): Promise<Listener> {
  const upstreams = new Map(Object.entries(services).map(([name, url]) => [name, new URL(url)]));
  const serviceOf = (req: IncomingMessage): string => {
    const credential = /Credential=[^/,\s]+\/\d{8}\/[a-z0-9-]+\/([a-z0-9-]+)\/aws4_request/i.exec(String(req.headers.authorization ?? '')) ?? /[?&]X-Amz-Credential=[^/&]+%2F\d{8}%2F[a-z0-9-]+%2F([a-z0-9-]+)%2Faws4_request/i.exec(req.url ?? '');
    return credential?.[1] ?? 's3';
  };
  return listen((req: IncomingMessage, res: ServerResponse) => {
    const to = upstreams.get(serviceOf(req));
    if (!to) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`the fake AWS has no service ${serviceOf(req)}\n`);
      return;
    }
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
      answer.once('error', () => res.destroy());
      answer.once('aborted', () => res.destroy());
    });
    upstream.once('error', () => {
      res.destroy();
      req.socket.destroy();
    });
    req.pipe(upstream);
  });
}
