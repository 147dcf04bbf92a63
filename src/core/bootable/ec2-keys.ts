import { AIM_BUSYBOX, AIM_DIR } from './init-scripts.js';

/** A script aim's init runs in the background once the network is up, on the platforms that need it. */
export interface InitStep {
  /** File name under /.aim. */
  name: string;
  script: string;
}

/**
 * EC2 without cloud-init: the instance's SSH public key (its key pair) from the instance metadata
 * service with IMDSv2, as EC2 requires for AMIs registered with ImdsSupport v2.0: a session token
 * by PUT (busybox wget cannot PUT, so nc speaks HTTP/1.0), then the key with the token in its
 * header (busybox 1.35's wget -T crashes on a refused connection: busybox timeout bounds it),
 * added once to root's authorized_keys. Tried for a minute while the network comes up;
 * an instance launched without a key pair (404) gets none. What it did goes to the console.
 */
export function ec2KeysScript(): string {
  return `#!${AIM_BUSYBOX} sh
B=${AIM_BUSYBOX}
IMDS=169.254.169.254
home=$($B awk -F: '$1 == "root" { print $6 }' /etc/passwd 2>/dev/null)
keys="\${home:-/root}/.ssh/authorized_keys"
i=0
while [ $i -lt 60 ]; do
  i=$((i + 1))
  answer=$(printf 'PUT /latest/api/token HTTP/1.0\\r\\nHost: %s\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 300\\r\\n\\r\\n' $IMDS | $B nc -w 5 $IMDS 80 2>/dev/null)
  case "$answer" in
    "HTTP/1."?" 200"*) ;;
    *) $B sleep 1; continue ;;
  esac
  token=$(printf '%s' "$answer" | $B tail -n 1 | $B tr -d '\\r\\n')
  out=$($B timeout 10 $B wget -q -O - --header "X-aws-ec2-metadata-token: $token" http://$IMDS/latest/meta-data/public-keys/0/openssh-key 2>&1)
  status=$?
  if [ $status -ne 0 ]; then
    case "$out" in
      *404*) echo "aim: the instance has no key pair: no ssh key from instance metadata"; exit 0 ;;
    esac
    $B sleep 1
    continue
  fi
  key=$(printf '%s\\n' "$out" | $B head -n 1)
  case "$key" in
    ssh-*|ecdsa-*|sk-*) ;;
    *) echo "aim: instance metadata gave no ssh public key"; exit 0 ;;
  esac
  umask 077
  $B mkdir -p "$($B dirname "$keys")"
  $B grep -qxF "$key" "$keys" 2>/dev/null || printf '%s\\n' "$key" >>"$keys"
  echo "aim: ssh key from instance metadata (IMDSv2) in $keys: $key"
  exit 0
done
echo "aim: instance metadata (IMDSv2) did not answer: no ssh key"
`;
}

/** The steps aim's init runs for a platform, after DHCP. */
export function platformInitSteps(platform: string): InitStep[] {
  return platform === 'ec2' ? [{ name: 'ec2-keys', script: ec2KeysScript() }] : [];
}

export const initStepPath = (step: InitStep) => `${AIM_DIR}/${step.name}`;
