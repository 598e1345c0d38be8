import { runService } from '@civildiy/common/runtime';
import { authService } from './service.ts';

await runService(authService);
