import { runService } from '@civildiy/common/runtime';
import { dashboardService } from './service.ts';

await runService(dashboardService);
