// Where `lb4 status|backends|backend ...` send their requests: the --admin value parsed strictly,
// so a bare port is a port on loopback and nothing is ever sent to an address the user did not
// write (a bare "9090" once went to the host "909", that is 0.0.3.141, port 0).

import t from 'tap';
import { parseTarget } from '../../bin/commands/admin-client.js';

t.test('--admin forms', async (t) => {
  t.same(parseTarget('9090'), { host: '127.0.0.1', port: 9090 }, 'a bare port is loopback');
  t.same(parseTarget(':9090'), { host: '127.0.0.1', port: 9090 });
  t.same(parseTarget('127.0.0.2:9090'), { host: '127.0.0.2', port: 9090 });
  t.same(parseTarget('localhost:9090'), { host: 'localhost', port: 9090 });
  t.same(parseTarget('[::1]:9090'), { host: '::1', port: 9090 });
  t.same(parseTarget('http://127.0.0.1:9090/'), { host: '127.0.0.1', port: 9090 });
  t.same(parseTarget('/run/lb4.sock'), { socketPath: '/run/lb4.sock' });
  t.same(parseTarget('./lb4.sock'), { socketPath: './lb4.sock' });
});

t.test('bad --admin values are refused, naming the value', async (t) => {
  for (const bad of ['0', '65536', '99999999', 'host', 'host:', '::1:9090', '[::1]', '1.2.3.4:80:90', 'http://x', '9090x', '']) {
    t.throws(() => parseTarget(bad), { code: 'LB4_INVALID_ADDRESS', field: 'admin', message: new RegExp(`"${bad.replace(/[.[\]]/g, '\\$&')}" is not an admin address`) }, JSON.stringify(bad));
  }
});
