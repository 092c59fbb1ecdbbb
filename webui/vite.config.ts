/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// DASHSTREAM_DEV_SERVER points `npm run dev` at a running server.
const target = process.env.DASHSTREAM_DEV_SERVER ?? 'http://127.0.0.1:3002';

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 900,
    rollupOptions: {
      output: {
        // Hashed names under /assets/: the server caches them forever.
        manualChunks: (id) => (id.includes('node_modules/@xyflow') || id.includes('node_modules/@dagrejs') ? 'graph' : undefined),
      },
    },
  },
  worker: { format: 'es' },
  server: {
    proxy: {
      '/api': target,
      '/health': target,
      '/version': target,
      '/metrics': target,
      '/ws': { target: target.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20000,
  },
});
