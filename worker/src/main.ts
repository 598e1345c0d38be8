import { runService } from '@civildiy/common/runtime';
import { workerService } from './service.ts';

await runService(workerService);
