import { runService } from '@civildiy/common/runtime';
import { notificationService } from './service.ts';

await runService(notificationService);
