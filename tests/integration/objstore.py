"""A real S3 object store for the offsite tests: one throw-away Ceph cluster with a RADOS
Gateway per test run (scripts/objstore), and a user and a bucket of its own per test.

    def test_x(objstore_bucket):
        b = objstore_bucket          # .endpoint .access_key .secret_key .bucket
        b.keys()                     # every object key in the bucket
        b.uploads()                  # unfinished multipart uploads: [(key, upload_id)]
        b.get(key)                   # an object's bytes

Requests go through curl's own SigV4 (the same signing the daemon uses through libcurl).
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, '..', '..', 'scripts', 'objstore')
NS = '{http://s3.amazonaws.com/doc/2006-03-01/}'


class Cluster:
    """One running cluster: its folder, S3 endpoint and admin keys."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='vv-objstore-')
        os.rmdir(self.dir)  # the script makes it
        p = subprocess.run([SCRIPT, 'up', self.dir], capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise AssertionError(f'scripts/objstore up failed:\n{p.stdout}{p.stderr}')
        env = dict(line.split('=', 1) for line in p.stdout.split() if '=' in line)
        self.endpoint = env['OBJSTORE_ENDPOINT']
        self.access_key = env['OBJSTORE_ACCESS_KEY']
        self.secret_key = env['OBJSTORE_SECRET_KEY']
        self.conf = env['OBJSTORE_CONF']

    def down(self):
        subprocess.run([SCRIPT, 'down', self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def bucket(self, object_lock=False):
        """A new user with a new bucket of its own."""
        uid = 'u' + uuid.uuid4().hex[:12]
        ak = 'AK' + uuid.uuid4().hex[:18].upper()
        sk = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        subprocess.run(['radosgw-admin', '-c', self.conf, 'user', 'create', f'--uid={uid}',
                        f'--display-name={uid}', f'--access-key={ak}', f'--secret={sk}'],
                       check=True, capture_output=True, timeout=60)
        b = Bucket(self.endpoint, ak, sk, 'b-' + uuid.uuid4().hex[:12])
        headers = ['x-amz-bucket-object-lock-enabled: true'] if object_lock else []
        status, body = b.request('PUT', '', headers=headers)
        assert status == 200, (status, body)
        return b


class Bucket:
    def __init__(self, endpoint, access_key, secret_key, bucket):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket

    def request(self, method, path_query, headers=(), data=None):
        """(status, body bytes) of one request on the bucket ('' or '/key?query')."""
        payload = data or b''
        cmd = ['curl', '-s', '-g', '-X', method, '--aws-sigv4', 'aws:amz:us-east-1:s3',
               '--user', f'{self.access_key}:{self.secret_key}',
               '-H', 'x-amz-content-sha256: ' + hashlib.sha256(payload).hexdigest(),
               '-o', '-', '-w', '\n%{http_code}']
        for h in headers:
            cmd += ['-H', h]
        if data is not None:
            cmd += ['--data-binary', '@-']
        cmd.append(f'{self.endpoint}/{self.bucket}{path_query}')
        p = subprocess.run(cmd, input=data, capture_output=True, timeout=120)
        body, _, status = p.stdout.rpartition(b'\n')
        return int(status or 0), body

    def keys(self, prefix=''):
        """Every object key (and size) under prefix: {key: size}."""
        out, token = {}, None
        while True:
            q = '?list-type=2&prefix=' + _enc(prefix)
            if token:
                q = '?continuation-token=' + _enc(token) + '&' + q[1:]
            status, body = self.request('GET', q)
            assert status == 200, (status, body)
            root = ET.fromstring(body)
            for c in root.iter(NS + 'Contents'):
                out[c.find(NS + 'Key').text] = int(c.find(NS + 'Size').text)
            if root.findtext(NS + 'IsTruncated') != 'true':
                return out
            token = root.findtext(NS + 'NextContinuationToken')

    def uploads(self):
        """The unfinished multipart uploads: [(key, upload id)]."""
        status, body = self.request('GET', '?uploads=')
        assert status == 200, (status, body)
        root = ET.fromstring(body)
        return [(u.findtext(NS + 'Key'), u.findtext(NS + 'UploadId'))
                for u in root.iter(NS + 'Upload')]

    def get(self, key):
        status, body = self.request('GET', '/' + _enc(key, keep='/'))
        assert status == 200, (status, key)
        return body


def _enc(s, keep=''):
    return re.sub(r'[^A-Za-z0-9._~' + re.escape(keep) + '-]',
                  lambda m: ''.join(f'%{b:02X}' for b in m.group(0).encode()), s)
