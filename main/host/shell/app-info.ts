// Identity shared by the shell and electron-builder.yml (a test keeps the two equal). Windows
// shows notifications only for an app whose AppUserModelID matches its installed shortcut.
export const APP_ID = 'vn.driveship.desktop';
export const PRODUCT_NAME = 'driveship';
