/**
 * PATH for every script dsrctl runs on a host, set (never appended to): under sudo without
 * secure_path, or a login whose PATH holds a user-writable directory, an inherited entry could put
 * another program in place of nginx, cp or sh that then runs as root. /usr/local/nginx/sbin is
 * where nginx built from source installs itself.
 */
export const REMOTE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/nginx/sbin';
export const SET_PATH = `PATH=${REMOTE_PATH}; export PATH`;
