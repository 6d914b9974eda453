import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// A static build (dist/) that any web server can host; the API and the Solana RPC it talks to are
// given at run time in the page's query string (see src/config.js).
export default defineConfig({
  base: './',
  plugins: [react()],
  define: { global: 'globalThis' },
  build: { target: 'es2022', chunkSizeWarningLimit: 2048 },
});
